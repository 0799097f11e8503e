"""A loopback double of the Google Cloud APIs, for the tests and the offline preflight.

The real clients (gcloud, google-cloud-storage, google-cloud-aiplatform) talk to it
over HTTP on 127.0.0.1, so what is tested is what runs in Cloud Build, minus Google.

    server.py     the HTTP server: routing by host or path, request log, env()
    http.py       request, response and Google-style errors
    discovery.py  request bodies checked against Google's discovery documents
    storage.py    Cloud Storage JSON API
    vertex.py     Vertex AI custom jobs
    runners.py    what running a custom job means here
    cloudbuild_api.py        Cloud Build builds and triggers
    run_api.py               Cloud Run services, revisions, traffic, invokers
    serviceusage_api.py      enabling APIs
    servicemanagement_api.py Cloud Endpoints service configs and rollouts
    iam_api.py               service accounts and every IAM policy
    resourcemanager_api.py   project IAM policies
    artifactregistry_api.py  Docker repositories and clean-up policies
    gcloud.py                the environment that points the real gcloud here
"""

from cloudbuild.double.server import Double
from cloudbuild.double.vertex import Outcome

__all__ = ["Double", "Outcome"]

"""Resource Manager v1: a project's IAM policy, as `gcloud projects add-iam-policy-binding`
reads and writes it (`POST /v1/projects/P:getIamPolicy`, then `:setIamPolicy`).

The policy itself is kept and checked by the IAM double (see iam_api), which knows
which service accounts exist. Projects are not modelled: any project id is one the
caller owns.
"""

from __future__ import annotations

import re

from cloudbuild.double import discovery
from cloudbuild.double.http import ApiError, Request, Response
from cloudbuild.double.iam_api import IamApi

DOCUMENT = "cloudresourcemanager.v1"
_POLICY = re.compile(r"/v1/projects/(?P<project>[^/:]+):(?P<verb>getIamPolicy|setIamPolicy)")


class ResourceManagerApi:
    service = "cloudresourcemanager"
    path_prefixes: tuple[str, ...] = ()  # reached by host only: "/v1/projects/" is not unique

    def __init__(self, iam: IamApi) -> None:
        self.iam = iam

    def handle(self, request: Request) -> Response:
        match = _POLICY.fullmatch(request.path)
        if request.method != "POST" or match is None:
            raise ApiError(404, f"Resource Manager has no {request.method} {request.path}")
        resource = f"projects/{match['project']}"
        if match["verb"] == "setIamPolicy":
            return Response.json(self.iam.set_policy(resource, request.json(), DOCUMENT))
        body = request.json()
        discovery.require(discovery.document(DOCUMENT), "GetIamPolicyRequest", body)
        return Response.json(self.iam.policy(resource))

"""`python -m api`: serve the API the way Vertex AI and Cloud Run start the image."""

import uvicorn

from api.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "api.main:app",
        host=settings.host,
        port=settings.port,
        # Cloud Run and Vertex AI already log every request; a second access log line per
        # request would double the log volume and cost time on the request path.
        access_log=False,
    )


if __name__ == "__main__":
    main()

"""`python -m api`: serve the API the way Vertex AI and Cloud Run start the image."""

import uvicorn

from api.settings import get_settings


def main() -> None:
    uvicorn.run(
        "api.main:app",
        # The platforms reach the container from outside it, so it listens on every interface.
        host="0.0.0.0",  # noqa: S104
        port=get_settings().port,
        # Cloud Run and Vertex AI already log every request; a second access log line per
        # request would double the log volume and cost time on the request path.
        access_log=False,
    )


if __name__ == "__main__":
    main()

"""latentscape studio: the HTTP server (job API, AUTOMATIC1111-compatible subset, the web page's backend).

Needs the ``serve`` extra (fastapi, uvicorn, python-multipart); nothing here is imported by the CLI until
``latentscape serve`` runs.
"""

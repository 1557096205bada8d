"""What the HTTP faces served by uvicorn share: the raw-ASGI plumbing (asgi.py) and the server that
listens before it says where (server.py)."""

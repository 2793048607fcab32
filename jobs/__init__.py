"""Planning jobs off the request path: the service's worker thread and the task queue."""

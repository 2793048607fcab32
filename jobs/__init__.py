"""Work off the request path: the planning worker thread, the task queue, and the daemon-thread
loop (:mod:`jobs.thread_loop`) the outbox sender, the mailbox poller and the timers run on."""

"""The web UI's machinery: a queue of jobs run one at a time in a worker process."""

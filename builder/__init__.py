"""quay-builder: the build worker program.

It connects to the server's build manager over a websocket (docs/BUILDS.md has the protocol),
takes one job at a time per unit of capacity, fetches and unpacks the build source safely, builds
it with buildah (or a Docker engine), pushes the result with the job's token, and reports phases,
log lines and the outcome.
"""

__version__ = "1.0.0"

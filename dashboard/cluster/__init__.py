"""The cluster source: the Kubernetes API as a live input.

``source`` defines the seam (``ClusterSource``: list and watch the kinds in
``resources.RESOURCES``); ``kube`` speaks to a real API server, ``simulated``
replays a recorded cluster. ``sync`` runs the watches and keeps ``store`` (API
objects in the database) current; ``snapshot`` turns the stored objects into the
API half of a node's ``NodeSnapshot``; ``diagnose`` re-runs checks when the API
side of a node changes.
"""

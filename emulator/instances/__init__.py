"""Instances of the Container classes: a class's pool, one instance's start and stop, its
container's spec, images, networks, and the errors a client gets."""

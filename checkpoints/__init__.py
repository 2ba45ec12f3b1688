"""The index of named checkpoints: one ``<arch>.<tag>.yaml`` file per checkpoint (see README)."""

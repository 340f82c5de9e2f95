"""Running the project: the `make run` stack, the Temporal toolchain and cluster set-up."""

"""Ray orchestration of degrader: model actors, the result writer and the driver."""

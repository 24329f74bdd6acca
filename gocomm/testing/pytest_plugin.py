"""The gocomm pytest plugin (entry point ``pytest11``); its fixtures come with the container."""

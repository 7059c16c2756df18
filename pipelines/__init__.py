"""How audio flows: typed events, the stages, the runner that owns them, codecs and transports."""

"""The general FastAGI library: the AGI wire protocol, the channel, the server; and, for tests
and benchmarks only, a simulated Asterisk (``simulated``)."""

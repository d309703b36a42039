"""The loyalty domain: plain functions taking a Session first. They never commit and know nothing of HTTP,
Apple or Google; the route or job that calls them commits once."""

"""Email: render templates, build messages, hand them to a transport."""

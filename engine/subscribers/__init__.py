"""What acts on people: signups, inbound events, import and export, profiles, live-edit impact."""

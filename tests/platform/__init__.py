"""Platform pieces: payload encryption and the codec endpoint, compose, email delivery."""

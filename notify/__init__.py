"""Customer notifications: policy, templates, channels and the outbox."""

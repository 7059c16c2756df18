"""What to say: dialogue state, policies and personas. Pure logic, no sockets."""

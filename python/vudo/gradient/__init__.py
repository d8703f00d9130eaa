"""Resource gradients: the signed GradientVector and the neighbour field."""

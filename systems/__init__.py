"""Lightning systems: one optimization loop; recipes differ only in the parts they pick."""

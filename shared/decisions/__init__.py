"""Pure decisions: frozen inputs, a policy and ``now`` in; a decision with its reason out. No I/O."""

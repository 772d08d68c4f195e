"""The conformance kit: check your own machines and tasks against the lifecycle's promises."""

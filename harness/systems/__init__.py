"""Systems under test: the adapter interface (`base`) and the adapters faultline ships."""

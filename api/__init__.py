"""The prediction API: serves one trained model the way Vertex AI and Cloud Run expect."""

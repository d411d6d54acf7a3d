"""Fast decoding: the seeded sampler, static-cache compiled decode, rep-batching, fused products, attention."""

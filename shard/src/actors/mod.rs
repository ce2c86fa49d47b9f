//! Actors: each owns its state and moves messages and bytes; decisions live in `core`.

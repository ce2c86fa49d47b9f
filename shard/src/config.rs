//! Configuration of a replica.

//! Unit tests of the group state machine and offsets bookkeeping.

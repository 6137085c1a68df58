//! JSON parsing with duplicate detection.

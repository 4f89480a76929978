//! Sans-IO policy for pipgate: what may be served, and the re-synthesized index pages.

"""Cross-cutting helpers: input validation and atomic result files."""

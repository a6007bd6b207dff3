"""The lead as marketing and sales see it: profile, fit and engagement explained, lifecycle, account, sweeps."""

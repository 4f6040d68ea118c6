"""Test tooling for the dashboards: the servers the browser test starts and the Playwright pages it reads."""

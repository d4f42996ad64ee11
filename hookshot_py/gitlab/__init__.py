"""GitLab projects: hookshot's GitLabRepo connections, on the shared forge layer."""

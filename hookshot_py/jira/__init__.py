"""JIRA (Cloud through OAuth 2.0, Server/Data Center through personal access tokens): the
JiraProject connection type, its commands, `/jira/webhook`, `/jira/oauth` and `/v1/jira/*`."""

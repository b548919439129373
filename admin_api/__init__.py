"""The admin service: the API and pages for the people who run a shop's bot (owners,
conversation designers, agents) and for platform operators. Its own Sanic process
(`python -m admin_api serve`, 0.0.0.0:8080); it never imports Rasa."""

"""The service: the loop (``loop``: `SidecarService`, which only runs the parts it is given),
what it reports (``summary``: its start-up report and run summary), its composition root
(``wiring``: every part built from the settings, each optional feature present or absent),
and what runs between jobs: the admin API's commands (``commands``), acting on incoming
changes (``incoming_changes``), keeping the serving base tidy (``serving_upkeep``), the
fleet's rollbacks and catch-up (``fleet_upkeep``) and coverage-triggered rebuilds
(``rebuilds``).

Import from the modules: this package imports nothing itself, so a test of one step does
not build the whole service.
"""

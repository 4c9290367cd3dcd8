"""One module per tab: each builds the tab's Task (options, models, run). The list of tabs is models.tasks.TABS."""

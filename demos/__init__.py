"""The tabs' widgets: demos/<tab>.py for each tab of models.tasks.TABS, each with ID, TITLE, EXPLANATION and build()."""

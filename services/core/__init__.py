"""Pure domain: catalog, calendar, events, topics. No Kafka or SimPy imports here."""

"""What the four utilities — power, water, gas, telecom — share: the account holders a
linked transfer moves to the new owner (see :mod:`services.utilities.accounts`).  Not a
department: each utility is its own department folder and service."""

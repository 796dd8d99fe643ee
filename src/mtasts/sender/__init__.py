"""The sending side: a Postfix socketmap MTA-STS policy server (`mtasts policyd`)."""

"""The touches and their feedback: email, consent (unsubscribe, preferences) and SES events,
retargeting audiences and ad platforms, timely responses to forms."""

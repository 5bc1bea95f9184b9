from django.dispatch import Signal

# Sent inside the creating transaction with `contact=`. Apps that react to new contacts (loops'
# "Contact added" trigger) listen here, so contacts never imports them.
contact_created = Signal()

"""Account data for offlineimap (and now oimap)."""
import json
import os

ACCOUNTS = {
    'work': {
        'host': '@HOST@',
        'port': '@PORT@',
        'user': 'alice',
        'folders': ['INBOX', 'Sent', 'Lists/announce'],
        'rename': {'Lists/announce': 'announce'},
    },
}


def get_secret(name):
    with open(os.path.expanduser('~/.offlineimap/secrets.json')) as f:
        return json.load(f)[name]

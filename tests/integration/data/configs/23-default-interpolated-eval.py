import os


def get_password(user, host):
    """Look the password up in ~/.passwords ("user@host:password" lines)."""
    with open(os.path.expanduser('~/.passwords')) as f:
        for line in f:
            key, _, secret = line.rstrip('\n').partition(':')
            if key == '%s@%s' % (user, host):
                return secret
    raise KeyError('%s@%s' % (user, host))

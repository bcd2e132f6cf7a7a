"""Loaded by the Python runner of scripts/bench --compare-python (through a
.pth file in its virtualenv under target/bench-python, nowhere else).

python-heptapod-runner 0.6.3 puts the Git credentials into the deployment URL
only when that URL starts with https:// (CleverCloudApplication.__init__
replaces 'https://' by 'https://USER:PASSWORD@'). The simulated Clever Cloud
of paas-sim serves its Git endpoint over plain http on 127.0.0.1, so without
this module every push of the Python runner is refused (HTTP 401, git: "could
not read Username"). This module does the same replacement for http:// URLs
and changes nothing else.
"""

try:
    from heptapod_runner import clever as _clever
except ImportError:  # pip itself, before the runner is installed
    _clever = None

if _clever is not None:
    _original_init = _clever.CleverCloudApplication.__init__

    def _init(self, orga, app_id, deploy_url, user, password, *args, **kwargs):
        _original_init(self, orga, app_id, deploy_url, user, password,
                       *args, **kwargs)
        if deploy_url.startswith('http://'):
            self.git_push_url = deploy_url.replace(
                'http://', 'http://%s:%s@' % (user, password), 1)

    _clever.CleverCloudApplication.__init__ = _init

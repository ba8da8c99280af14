"""Project configuration: ``headwater.yaml`` models and loader."""

from headwater.config.loader import CONFIG_FILE, load_config, parse_config
from headwater.config.models import ProjectConfig

__all__ = ["CONFIG_FILE", "ProjectConfig", "load_config", "parse_config"]

from libs.kit.serve import main
from services.version.app import create_app
from services.version.settings import VersionSettings

main("version", VersionSettings, create_app)

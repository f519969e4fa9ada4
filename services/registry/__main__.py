from libs.kit.serve import main
from services.registry.app import create_app
from services.registry.settings import RegistrySettings

main("registry", RegistrySettings, create_app)

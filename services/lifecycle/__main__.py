from libs.kit.serve import main
from services.lifecycle.app import create_app
from services.lifecycle.settings import LifecycleSettings

main("lifecycle", LifecycleSettings, create_app)

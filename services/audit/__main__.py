from libs.kit.serve import main
from services.audit.app import create_app
from services.audit.settings import AuditSettings

main("audit", AuditSettings, create_app)
